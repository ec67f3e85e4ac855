"""Session settings an agent may change on its own: at start-up (startup packet, libpq `options`).

Everything else — role, session_authorization, session_replication_role (which silences triggers),
superuser-only settings — is refused at start-up, because dbfw could not check it there. Settings
that change how the server reads SQL text (standard_conforming_strings, backslash_quote) are not
harmless either: dbfw's parser must read statements exactly as the server will. The list is
deliberately short: what drivers and ORMs send, plus common per-session tuning.
"""

from __future__ import annotations

import re

HARMLESS_SETTINGS = frozenset(s.lower() for s in (
    "application_name", "client_encoding", "DateStyle", "TimeZone", "IntervalStyle", "extra_float_digits",
    "search_path", "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
    "idle_session_timeout", "transaction_timeout", "default_transaction_isolation", "default_transaction_read_only",
    "default_transaction_deferrable", "bytea_output", "client_min_messages",
    "jit", "work_mem", "maintenance_work_mem", "temp_buffers", "synchronous_commit", "geqo",
    "random_page_cost", "seq_page_cost", "effective_cache_size", "cursor_tuple_fraction", "plan_cache_mode",
    "max_parallel_workers_per_gather", "enable_seqscan", "enable_indexscan", "enable_bitmapscan",
    "enable_hashjoin", "enable_mergejoin", "enable_nestloop", "enable_partitionwise_join",
    "enable_partitionwise_aggregate", "default_statistics_target", "gin_fuzzy_search_limit",
    "array_nulls", "xmlbinary", "xmloption", "lc_monetary", "lc_numeric", "lc_time", "default_text_search_config",
    "timezone_abbreviations", "quote_all_identifiers", "escape_string_warning",
))


# Limits an operator may set on a database or role. Turning one off (0; -1 for temp_file_limit) escapes it.
LIMIT_SETTINGS = frozenset({"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
                            "idle_session_timeout", "transaction_timeout", "temp_file_limit"})
# Boolean settings whose "off" escapes a control an operator set.
CONTROL_SETTINGS = frozenset({"default_transaction_read_only", "transaction_read_only"})
# What PostgreSQL reads as true (it takes any unambiguous prefix of true/yes, and on, 1).
_TRUE = frozenset({"on", "1", "t", "tr", "tru", "true", "y", "ye", "yes"})
# Units of the limits, in their base unit (milliseconds; kilobytes for temp_file_limit), as the server
# accepts them (case-sensitive). Microseconds are left out: the server rounds them, possibly to 0.
_TIME_UNITS = {"": 1, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_SIZE_UNITS = {"": 1, "kB": 1, "MB": 1024, "GB": 1024**2, "TB": 1024**3}
_LIMIT_VALUE = re.compile(r"\s*(-?[0-9]+)\s*([a-zA-Z]*)\s*")


def limit_value(name: str, value: str) -> int | None:
    """A limit's value in its base unit, or None if it is not a whole number with a unit the server takes
    exactly (0.4, 1e-9 and 100us are rounded by the server, possibly to 0: dbfw does not read them)."""
    m = _LIMIT_VALUE.fullmatch(value)
    if m is None:
        return None
    units = _SIZE_UNITS if name == "temp_file_limit" else _TIME_UNITS
    unit = units.get(m.group(2))
    return None if unit is None else int(m.group(1)) * unit


def value_escapes_control(name: str, value: str, current: dict[str, int] | None = None) -> bool:
    """Whether setting ``name`` to ``value`` lifts a limit or a control the operator set (the value as the
    server reads it, quotes removed): 0 or -1 (no limit), a value above ``current`` (the database's own,
    in base units, when known), or a value dbfw cannot read exactly. DEFAULT goes back to the operator's."""
    name = name.lower()
    value = value.strip().strip("'\"").strip()
    if value.lower() == "default":
        return False
    if name in LIMIT_SETTINGS:
        amount = limit_value(name, value)
        if amount is None:
            return True
        unlimited = amount < 0 if name == "temp_file_limit" else amount <= 0
        if unlimited:
            return True
        ceiling = (current or {}).get(name)
        return ceiling is not None and (ceiling > 0 or (name == "temp_file_limit" and ceiling == 0)) \
            and amount > ceiling
    if name in CONTROL_SETTINGS:
        return value.lower() not in _TRUE
    return False


class SettingNotAllowed(ValueError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def parse_libpq_options(options: str) -> list[tuple[str, str]]:
    """Split libpq's `options` ("-c a=b --c=d", backslash escapes a space) into (name, value) pairs.

    Raises ValueError for anything that is not a setting (other postgres command-line switches).
    """
    words: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in options:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-c" and i + 1 < len(words):
            assignment = words[i + 1]
            i += 2
        elif word.startswith("-c") and len(word) > 2:
            assignment = word[2:]
            i += 1
        elif word.startswith("--"):
            assignment = word[2:]
            i += 1
        else:
            raise ValueError(f"unsupported option {word!r}")
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            raise ValueError(f"option {assignment!r} is not name=value")
        out.append((name.replace("-", "_"), value))
    return out


def check_startup_settings(params: dict[str, str], extra_allowed: frozenset[str] = frozenset()) -> None:
    """Raise SettingNotAllowed naming the first start-up setting an agent may not change."""
    allowed = HARMLESS_SETTINGS | extra_allowed
    for key, value in params.items():
        if key in ("user", "database", "replication") or key.startswith("_pq_."):
            continue
        if key == "options":
            try:
                pairs = parse_libpq_options(value)
            except ValueError:
                raise SettingNotAllowed("options") from None
            for name, setting in pairs:
                if name.lower() not in allowed or value_escapes_control(name, setting):
                    raise SettingNotAllowed(name)
        elif key.lower() not in allowed or value_escapes_control(key, value):
            raise SettingNotAllowed(key)
