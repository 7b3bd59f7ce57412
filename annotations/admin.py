from django.contrib import admin

from .models import Artwork, Collection, Connection, ConnectionDecision, ImportRecord


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(Artwork)
class ArtworkAdmin(admin.ModelAdmin):
    list_display = ("external_id", "collection", "title", "author", "date_text", "split")
    list_filter = ("collection", "split")
    search_fields = ("external_id", "title", "author")


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ("artwork_a", "artwork_b", "type", "updated_at")
    list_filter = ("type",)
    raw_id_fields = ("artwork_a", "artwork_b", "latest")


@admin.register(ConnectionDecision)
class ConnectionDecisionAdmin(admin.ModelAdmin):
    """Read-only: the history of decisions is append-only."""

    list_display = ("uid", "artwork_a", "artwork_b", "type", "source", "user", "annotated_at")
    list_filter = ("type", "source")
    search_fields = ("uid",)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ImportRecord)
class ImportRecordAdmin(admin.ModelAdmin):
    list_display = ("id", "collection", "metadata_file", "connections_file", "created_at")
