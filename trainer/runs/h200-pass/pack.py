"""Pack FER2013 for the device: per-image lossless WebP in two npz parts."""

import gzip
import sys

import cv2
import numpy as np

with gzip.open(sys.argv[1], "rt") as f:
    rows = f.read().split("\n")
assert rows[0] == "emotion,pixels,Usage" and rows[-1] == ""
rows = rows[1:-1]
em, us, blobs = [], [], []
for r in rows:
    a, b, c = r.split(",")
    px = np.array(b.split(), dtype=np.uint8).reshape(48, 48)
    ok, buf = cv2.imencode(".webp", px, [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert ok and (cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) == px).all()
    em.append(int(a))
    us.append(c)
    blobs.append(buf.tobytes())
cut = int(sys.argv[4])
for part, sl in ((sys.argv[2], slice(0, cut)), (sys.argv[3], slice(cut, None))):
    b = blobs[sl]
    np.savez(
        part,
        emotion=np.array(em[sl], np.uint8),
        usage=np.array(us[sl]),
        lengths=np.array([len(x) for x in b], np.int32),
        data=np.frombuffer(b"".join(b), np.uint8),
    )
print(len(rows), sum(map(len, blobs[:cut])) / 1e6, sum(map(len, blobs[cut:])) / 1e6)
