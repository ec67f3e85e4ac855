"""Storage of approvals, audit events and recordings. ``factory.open_store`` opens the one a URL names."""
