from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from dashboard.demo import seed as demo


class Command(BaseCommand):
    help = "Seed the demo project: simulated agents stream several runs through the real ingest path."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reset", action="store_true", help="delete the demo runs and stream them again")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["reset"]:
            demo.reset()
        user = demo.demo_user()
        if demo.is_seeded():
            self.stdout.write("The demo is already seeded (use --reset to stream it again).")
        else:
            with tqdm(total=round(demo.total_seconds()), unit="s", desc="streaming demo runs (simulated time)",
                      disable=options["quiet"], bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}]") as bar:
                stored = demo.seed(progress=bar.update)
            for name, samples in stored.items():
                self.stdout.write(f"  {name}: {samples:,} samples (simulated)")
        if user.check_password(demo.DEMO_PASSWORD):
            self.stdout.write(self.style.SUCCESS(
                f"Demo login: user {demo.DEMO_USER!r}, password {demo.DEMO_PASSWORD!r}"
            ))
        else:
            self.stdout.write(self.style.SUCCESS(
                f"Demo login: user {demo.DEMO_USER!r}, with the password you gave it "
                f"(manage.py changepassword {demo.DEMO_USER} sets another)"
            ))
