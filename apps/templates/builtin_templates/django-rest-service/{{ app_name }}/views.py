from rest_framework import filters, viewsets

from .models import {{ resource_name }}
from .serializers import {{ resource_name }}Serializer


class {{ resource_name }}ViewSet(viewsets.ModelViewSet):
    """List, create, retrieve, update and delete {{ resource_name }} objects.

    Reading is open to everyone; writing needs an authenticated user (token or session).
    Supports `?search=` (name, description) and `?ordering=` (name, created_at).
    """

    queryset = {{ resource_name }}.objects.all()
    serializer_class = {{ resource_name }}Serializer
    filter_backends = [filters.SearchFilter, filters.OrderingFilter]
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]
