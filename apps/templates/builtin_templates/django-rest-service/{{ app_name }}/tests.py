{% set model = resource_name -%}
{% set basename = resource_name | lower -%}
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.test import SimpleTestCase, TestCase
from django.urls import reverse
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.test import APITestCase

from .models import {{ model }}

LIST_URL = reverse("{{ basename }}-list")
PASSWORD = "correct-horse-battery"


def detail_url(pk: int) -> str:
    return reverse("{{ basename }}-detail", args=[pk])


def names(response) -> list[str]:
    return [row["name"] for row in response.data["results"]]


class {{ model }}ModelTests(TestCase):
    def test_str_is_the_name(self):
        self.assertEqual(str({{ model }}(name="Widget")), "Widget")


class {{ model }}ApiReadTests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        cls.first = {{ model }}.objects.create(name="First", description="The first one")
        cls.second = {{ model }}.objects.create(name="Second", description="Another one")

    def test_list_is_public_paginated_and_newest_first(self):
        response = self.client.get(LIST_URL)
        self.assertEqual(response.status_code, status.HTTP_200_OK)
        self.assertEqual(response.data["count"], 2)
        self.assertEqual(names(response), ["Second", "First"])

    def test_retrieve(self):
        response = self.client.get(detail_url(self.first.pk))
        self.assertEqual(response.status_code, status.HTTP_200_OK)
        self.assertEqual(response.data["name"], "First")
        fields = {"id", "name", "description", "created_at", "updated_at"}
        self.assertEqual(set(response.data), fields)

    def test_retrieve_missing_is_404(self):
        response = self.client.get(detail_url(self.second.pk + 1000))
        self.assertEqual(response.status_code, status.HTTP_404_NOT_FOUND)

    def test_search_and_ordering(self):
        response = self.client.get(LIST_URL, {"search": "another"})
        self.assertEqual(names(response), ["Second"])
        response = self.client.get(LIST_URL, {"ordering": "name"})
        self.assertEqual(names(response), ["First", "Second"])


class {{ model }}ApiWriteTests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        cls.user = get_user_model().objects.create_user("alice", password=PASSWORD)

    def test_anonymous_users_cannot_write(self):
        response = self.client.post(LIST_URL, {"name": "Nope"}, format="json")
        self.assertEqual(response.status_code, status.HTTP_401_UNAUTHORIZED)
        self.assertFalse({{ model }}.objects.exists())

    def test_create_update_delete(self):
        self.client.force_authenticate(self.user)

        payload = {"name": "  Widget  ", "description": "Blue"}
        response = self.client.post(LIST_URL, payload, format="json")
        self.assertEqual(response.status_code, status.HTTP_201_CREATED, response.data)
        pk = response.data["id"]
        self.assertEqual(response.data["name"], "Widget")

        payload = {"description": "Green"}
        response = self.client.patch(detail_url(pk), payload, format="json")
        self.assertEqual(response.status_code, status.HTTP_200_OK)
        self.assertEqual({{ model }}.objects.get(pk=pk).description, "Green")

        payload = {"name": "Gadget", "description": ""}
        response = self.client.put(detail_url(pk), payload, format="json")
        self.assertEqual(response.status_code, status.HTTP_200_OK)
        self.assertEqual({{ model }}.objects.get(pk=pk).name, "Gadget")

        response = self.client.delete(detail_url(pk))
        self.assertEqual(response.status_code, status.HTTP_204_NO_CONTENT)
        self.assertFalse({{ model }}.objects.filter(pk=pk).exists())

    def test_validation_errors(self):
        self.client.force_authenticate(self.user)
        {{ model }}.objects.create(name="Taken")

        response = self.client.post(LIST_URL, {"name": ""}, format="json")
        self.assertEqual(response.status_code, status.HTTP_400_BAD_REQUEST)
        self.assertIn("name", response.data)

        response = self.client.post(LIST_URL, {"name": "Taken"}, format="json")
        self.assertEqual(response.status_code, status.HTTP_400_BAD_REQUEST)
        self.assertIn("name", response.data)

    def test_token_authentication(self):
        credentials = {"username": "alice", "password": PASSWORD}
        response = self.client.post(reverse("api-token"), credentials, format="json")
        self.assertEqual(response.status_code, status.HTTP_200_OK)
        self.assertEqual(response.data["token"], Token.objects.get(user=self.user).key)

        self.client.credentials(HTTP_AUTHORIZATION=f"Token {response.data['token']}")
        response = self.client.post(LIST_URL, {"name": "With a token"}, format="json")
        self.assertEqual(response.status_code, status.HTTP_201_CREATED)


class ProjectTests(TestCase):
    def test_api_urls(self):
        self.assertEqual(LIST_URL, "/api/{{ app_name | replace("_", "-") }}/")
        self.assertEqual(detail_url(7), "/api/{{ app_name | replace("_", "-") }}/7/")

    def test_health_check(self):
        response = self.client.get(reverse("healthz"))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"status": "ok"})


class StaticFilesTests(SimpleTestCase):
    def test_favicon_is_a_real_icon(self):
        path = finders.find("favicon.ico")
        self.assertIsNotNone(path)
        with open(path, "rb") as handle:
            self.assertEqual(handle.read(4), b"\x00\x00\x01\x00")
