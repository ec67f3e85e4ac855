from .base import ApprovalRecord, Store, StoreError, Vote, open_store

__all__ = ["ApprovalRecord", "Store", "StoreError", "Vote", "open_store"]
