from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from workbench.storage_paths import private_file


class Command(BaseCommand):
    help = "Create the local login (a superuser) once, and print it. The password is kept in DATA_DIR."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="curator")

    def handle(self, *args, **options) -> None:
        username = options["username"]
        secret_file = settings.DATA_DIR / f".{username}-password"
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None or not secret_file.exists():
            password = secrets.token_urlsafe(12)
            user = user or User(username=username, email=f"{username}@localhost")
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
            private_file(secret_file, password)
        password = secret_file.read_text().strip()
        self.stdout.write(f"Log in as: {username} / {password}")
        if os.environ.get("DEBUG", "") not in ("1", "true", "yes"):
            self.stderr.write("Change this password (python manage.py changepassword) on a shared server.")
