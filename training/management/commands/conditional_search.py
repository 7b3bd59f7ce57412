from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.cli import top_option, version_named
from training.conditional_search import TOP_K, ConditionalSearchError, parse_lambda, search


class Command(BaseCommand):
    help = (
        'Conditional search, "like this one, but Baroque" (Backward Search, methods.md §4): the artworks '
        "nearest to the query's signature moved until the model's attribute classifiers see the wanted "
        "classes. Needs a backward-search version (train_model --method backward-search). Prints the ranked "
        "artwork ids with their scores, predicted classes and similarity kept to the query."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True, help="a backward-search version (number or vN)")
        parser.add_argument("--query", required=True, type=int, help="the query artwork's id")
        parser.add_argument(
            "--condition",
            action="append",
            required=True,
            metavar="LABEL=CLASS",
            help="a wanted class (repeat for several labels), e.g. --condition style=Baroque",
        )
        parser.add_argument(
            "--lambda", dest="lam", help="pull towards the query (default 1.1 for one condition, 3.2 for two)"
        )
        parser.add_argument("--student", action="store_true", help="the distilled student, one forward pass")
        parser.add_argument("--top", type=int, default=TOP_K)
        parser.add_argument("--plain", action="store_true", help="also print the unconditional neighbours")

    def handle(self, *args, **options) -> None:
        top_option(options["top"])
        version = version_named(options["model"])
        try:
            lam = parse_lambda(options["lam"])
            result = search(
                version, options["query"], options["condition"], lam, options["student"], options["top"]
            )
        except ConditionalSearchError as exc:
            raise CommandError(str(exc)) from None
        conditions = ", ".join(f"{task}={value}" for task, value in result["conditions"].items())
        how = (
            "student"
            if result["mode"] == "student"
            else f"optimisation, λ {result['lambda']:g}, {result['steps']} steps"
        )
        self.stdout.write(
            f"{version.label}: artwork {options['query']} ({', '.join(result['query_predicted'].values())}) "
            f"but {conditions} — {how}, {result['milliseconds']:.1f} ms"
        )
        self._table(result["hits"])
        if options["plain"]:
            self.stdout.write("unconditional nearest:")
            self._table(result["plain_hits"])

    def _table(self, hits: list[dict]) -> None:
        self.stdout.write(f"{'rank':>4} {'id':>8} {'score':>7} {'kept':>6}  predicted")
        for rank, hit in enumerate(hits, start=1):
            predicted = ", ".join(
                f"{task} {value['class']} ({value['probability']:.2f})"
                for task, value in hit["predicted"].items()
            )
            kept = hit["similarity_to_query"]
            self.stdout.write(
                f"{rank:>4} {hit['artwork_id']:>8} {hit['score']:>7.3f} {kept:>6.3f}  {predicted}"
            )
