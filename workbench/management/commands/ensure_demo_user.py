from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from workbench import paths


def private_file(path: Path, text: str) -> None:
    """Write a secret readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


class Command(BaseCommand):
    help = "Create the local login (a superuser) once, and print it. The password is kept in DATA_DIR."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="curator")

    def handle(self, *args, **options) -> None:
        username = options["username"]
        secret_file = paths.login_secret_file(username)
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
