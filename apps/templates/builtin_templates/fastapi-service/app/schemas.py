"""Request and response models."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ItemBase(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["Widget"])
    description: str | None = Field(default=None, max_length=1000)
    quantity: int = Field(default=0, ge=0)


class ItemCreate(ItemBase):
    """Body of POST /items."""


class ItemUpdate(BaseModel):
    """Body of PATCH /items/{item_id}: only the fields that are sent change."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    quantity: int | None = Field(default=None, ge=0)

    @field_validator("name", "quantity")
    @classmethod
    def not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be omitted but not null")
        return value


class Item(ItemBase):
    """An item as stored and returned by the API."""

    id: int


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
