from app.main import VERSION


def create(client, **fields):
    response = client.post("/items", json={"name": "Widget", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": VERSION}


def test_create_and_get(client):
    item = create(client, name="  Widget  ", description="Blue", quantity=3)
    assert item == {"id": 1, "name": "Widget", "description": "Blue", "quantity": 3}
    assert client.get(f"/items/{item['id']}").json() == item


def test_list_with_pagination(client):
    for name in ("a", "b", "c"):
        create(client, name=name)
    assert [item["name"] for item in client.get("/items").json()] == ["a", "b", "c"]
    page = client.get("/items", params={"offset": 1, "limit": 1}).json()
    assert [item["name"] for item in page] == ["b"]
    assert client.get("/items", params={"limit": 0}).status_code == 422


def test_partial_update(client):
    item = create(client, description="Blue", quantity=3)
    response = client.patch(f"/items/{item['id']}", json={"quantity": 5})
    assert response.status_code == 200
    assert response.json() == {**item, "quantity": 5}
    response = client.patch(f"/items/{item['id']}", json={"description": None})
    assert response.json()["description"] is None


def test_delete(client):
    item = create(client)
    assert client.delete(f"/items/{item['id']}").status_code == 204
    assert client.get(f"/items/{item['id']}").status_code == 404
    assert client.delete(f"/items/{item['id']}").status_code == 404


def test_missing_item_is_404(client):
    assert client.get("/items/999").status_code == 404
    assert client.patch("/items/999", json={"quantity": 1}).status_code == 404


def test_validation_errors(client):
    assert client.post("/items", json={}).status_code == 422
    assert client.post("/items", json={"name": ""}).status_code == 422
    assert client.post("/items", json={"name": "x", "quantity": -1}).status_code == 422
    assert client.post("/items", json={"name": "x", "colour": "red"}).status_code == 422
    item = create(client)
    assert client.patch(f"/items/{item['id']}", json={"name": None}).status_code == 422


def test_openapi_schema(client):
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "{{ project_name }}"
    assert "/items/{item_id}" in schema["paths"]
