from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workbench.roles import CURATORS


class Command(BaseCommand):
    help = "Make a user a curator (imports, trains, clusters, promotes) or an annotator (reviews, annotates)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("role", choices=["curator", "annotator"])
        parser.add_argument("--create", action="store_true", help="create the user (asks for no password)")

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            if not options["create"]:
                raise CommandError(f"no user {options['username']!r} (add --create)")
            user = User.objects.create_user(options["username"])
        group, _ = Group.objects.get_or_create(name=CURATORS)
        if options["role"] == "curator":
            user.groups.add(group)
        else:
            user.groups.remove(group)
        self.stdout.write(
            f"{user.get_username()} is now {'a curator' if options['role'] == 'curator' else 'an annotator'}"
        )
