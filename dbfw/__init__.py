"""dbfw: an SQL-aware database firewall."""

__version__ = "0.1.0"
