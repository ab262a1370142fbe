"""Rebuild the original fer2013.csv, byte for byte, from the packed parts."""

import sys

import cv2
import numpy as np

*parts, out = sys.argv[1:]
lines = ["emotion,pixels,Usage"]
for p in parts:
    z = np.load(p)
    data, offs = z["data"], np.concatenate([[0], np.cumsum(z["lengths"])])
    for i, (e, u) in enumerate(zip(z["emotion"], z["usage"], strict=True)):
        px = cv2.imdecode(data[offs[i] : offs[i + 1]], cv2.IMREAD_GRAYSCALE)
        lines.append(f"{e},{' '.join(map(str, px.ravel().tolist()))},{u}")
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
print(out, len(lines) - 1, "rows")
