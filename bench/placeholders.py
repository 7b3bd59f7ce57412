"""Placeholder artworks for the benchmarks that need a large collection in the database but no image files
(the map, the review pages). Call after `django.setup()`."""

from __future__ import annotations

from collections.abc import Callable


def placeholder_artworks(collection, count: int, **fields: Callable[[int], object]) -> list[int]:
    """`count` artworks of `collection` in bulk inserts, named bench-0, bench-1, ...; `fields[name](i)` gives
    artwork i's value of `name` (called in order, artwork by artwork). Their primary keys, in order."""
    from annotations.models import Artwork

    Artwork.objects.bulk_create(
        [
            Artwork(
                external_id=f"bench-{i}",
                collection=collection,
                image_sha256=f"{i:064x}",
                image_ext="jpg",
                source_path=f"img/{i}.jpg",
                width=800,
                height=600,
                title=f"Composition {i}",
                **{name: value(i) for name, value in fields.items()},
            )
            for i in range(count)
        ],
        batch_size=5000,
    )
    return list(Artwork.objects.filter(collection=collection).order_by("pk").values_list("pk", flat=True))
