"""{{ project_name }}: the FastAPI application.

Run it with `scripts/run.sh` (development) or `uvicorn app.main:app`.
"""

from typing import Annotated

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    HTTPException,
    Query,
    Request,
    Response,
    status,
)

from app.schemas import Health, Item, ItemCreate, ItemUpdate
from app.store import ItemStore

VERSION = "{{ version }}"


def get_store(request: Request) -> ItemStore:
    """The store of the running app (each app made by `create_app` has its own)."""
    return request.app.state.store


Store = Annotated[ItemStore, Depends(get_store)]

system = APIRouter(tags=["system"])
items = APIRouter(prefix="/items", tags=["items"])


def not_found() -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Item not found")


@system.get("/health")
def health() -> Health:
    return Health(version=VERSION)


@items.get("")
def list_items(
    store: Store,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> list[Item]:
    return store.list_items(offset=offset, limit=limit)


@items.post("", status_code=status.HTTP_201_CREATED)
def create_item(data: ItemCreate, store: Store) -> Item:
    return store.create(data)


@items.get("/{item_id}")
def get_item(item_id: int, store: Store) -> Item:
    item = store.get(item_id)
    if item is None:
        raise not_found()
    return item


@items.patch("/{item_id}")
def update_item(item_id: int, changes: ItemUpdate, store: Store) -> Item:
    item = store.update(item_id, changes)
    if item is None:
        raise not_found()
    return item


@items.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_item(item_id: int, store: Store) -> Response:
    if not store.delete(item_id):
        raise not_found()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def create_app() -> FastAPI:
    app = FastAPI(
        title="{{ project_name }}",
        description="{{ description | replace("\\", "\\\\") | replace('"', '\\"') }}",
        version=VERSION,
    )
    app.state.store = ItemStore()
    app.include_router(system)
    app.include_router(items)
    return app


app = create_app()
