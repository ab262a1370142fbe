"""The commands of `python -m app` besides the window: `app.__main__` runs them, `app.launch`
lists them in its help (one list for both, importing neither)."""

# verb → (its module, with `main(argv)`; what it does)
VERBS = {
    "analyze": (
        "app.analyze",
        "a video or image folder (or many, on a Dask cluster) → annotated MP4, CSV / JSON lines",
    ),
    "benchmark": ("app.benchmark", "frames/s and stage ms with one face and with five"),
    "cameras": ("app.cameras", "the camera indices that open"),
}
