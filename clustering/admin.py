from django.contrib import admin

from .models import ClusteringRun, Proposal, ProposalMember


@admin.register(ClusteringRun)
class ClusteringRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "model_version", "algorithm", "cluster_count", "noise_share", "created_at")
    list_filter = ("algorithm",)


class ProposalMemberInline(admin.TabularInline):
    model = ProposalMember
    raw_id_fields = ("artwork",)
    extra = 0


@admin.register(Proposal)
class ProposalAdmin(admin.ModelAdmin):
    list_display = ("pk", "run", "rank", "kind", "size", "confidence", "new_links", "status")
    list_filter = ("kind", "status")
    inlines = [ProposalMemberInline]
