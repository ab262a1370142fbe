"""Architecture search: SGAS over Auto-FERNet cells (`sgas`) and Zen-NAS evolution over ZenNet
structure strings (`zen`). Both emit the formats the model builders read (a genotype, a
structure string), so a search result trains with `python -m trainer train --model FILE`."""
