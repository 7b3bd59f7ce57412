"""Model versions and training rounds: see the signatures issue. Nothing is stored here yet."""
