from django.contrib import admin

from .models import {{ resource_name }}


@admin.register({{ resource_name }})
class {{ resource_name }}Admin(admin.ModelAdmin):
    list_display = ["name", "created_at", "updated_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_at", "updated_at"]
