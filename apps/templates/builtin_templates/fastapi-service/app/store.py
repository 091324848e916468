"""A thread-safe in-memory item store.

Replace it with a database-backed store (same methods) when data must survive restarts.
"""

import itertools
import threading

from app.schemas import Item, ItemCreate, ItemUpdate


class ItemStore:
    def __init__(self) -> None:
        self._items: dict[int, Item] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def list_items(self, *, offset: int = 0, limit: int | None = None) -> list[Item]:
        with self._lock:
            items = sorted(self._items.values(), key=lambda item: item.id)
        end = None if limit is None else offset + limit
        return items[offset:end]

    def get(self, item_id: int) -> Item | None:
        with self._lock:
            return self._items.get(item_id)

    def create(self, data: ItemCreate) -> Item:
        with self._lock:
            item = Item(id=next(self._ids), **data.model_dump())
            self._items[item.id] = item
            return item

    def update(self, item_id: int, changes: ItemUpdate) -> Item | None:
        with self._lock:
            current = self._items.get(item_id)
            if current is None:
                return None
            updated = current.model_copy(update=changes.model_dump(exclude_unset=True))
            self._items[item_id] = updated
            return updated

    def delete(self, item_id: int) -> bool:
        with self._lock:
            return self._items.pop(item_id, None) is not None
