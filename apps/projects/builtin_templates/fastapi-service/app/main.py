"""{{ project_name }}: the FastAPI application.

Run it with `scripts/run.sh` (development) or `uvicorn app.main:app`.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response, status

from app.schemas import Health, Item, ItemCreate, ItemUpdate
from app.store import ItemStore

VERSION = "{{ version }}"


def get_store(request: Request) -> ItemStore:
    """The store of the running app (each app made by `create_app` has its own)."""
    return request.app.state.store


Store = Annotated[ItemStore, Depends(get_store)]

router = APIRouter()


@router.get("/health", tags=["health"])
def health() -> Health:
    return Health(version=VERSION)


@router.get("/items", tags=["items"])
def list_items(
    store: Store,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> list[Item]:
    return store.list_items(offset=offset, limit=limit)


@router.post("/items", status_code=status.HTTP_201_CREATED, tags=["items"])
def create_item(data: ItemCreate, store: Store) -> Item:
    return store.create(data)


@router.get("/items/{item_id}", tags=["items"])
def get_item(item_id: int, store: Store) -> Item:
    item = store.get(item_id)
    if item is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Item not found")
    return item


@router.patch("/items/{item_id}", tags=["items"])
def update_item(item_id: int, changes: ItemUpdate, store: Store) -> Item:
    item = store.update(item_id, changes)
    if item is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Item not found")
    return item


@router.delete("/items/{item_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["items"])
def delete_item(item_id: int, store: Store) -> Response:
    if not store.delete(item_id):
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Item not found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def create_app() -> FastAPI:
    app = FastAPI(
        title="{{ project_name }}",
        description="{{ description | replace("\\", "\\\\") | replace('"', '\\"') }}",
        version=VERSION,
    )
    app.state.store = ItemStore()
    app.include_router(router)
    return app


app = create_app()
