from rest_framework import serializers

from .models import {{ resource_name }}


class {{ resource_name }}Serializer(serializers.ModelSerializer):
    class Meta:
        model = {{ resource_name }}
        fields = ["id", "name", "description", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
