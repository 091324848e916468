from rest_framework.routers import DefaultRouter

from .views import {{ resource_name }}ViewSet

router = DefaultRouter()
router.register("{{ app_name | replace("_", "-") }}", {{ resource_name }}ViewSet)

urlpatterns = router.urls
