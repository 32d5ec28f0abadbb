"""The left of the first system the key study drew for each violin key, one row per key
and one column per model (the same seed, so the same noise in every cell): whether a
change of key changes what the model draws where the key signature goes.

Usage: python3 same-seed.py OUT.png LABEL=KEY_STUDY_WORK [LABEL=KEY_STUDY_WORK ...]
(each KEY_STUDY_WORK a folder that key-study.sh filled; numpy and Pillow).
"""
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

KEYS = ["C major", "G major", "D major", "A major", "F major", "B-flat major"]
CROP = (0, 30, 150, 100)  # the first system's clef, signature and first notes
ZOOM = 3


def cell(work, key):
    page = os.path.join(work, "violin-" + key.replace(" ", "-"), "page-0.png")
    return Image.open(page).convert("L").crop(CROP)


def main():
    out, columns = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
    w, h = CROP[2] - CROP[0], CROP[3] - CROP[1]
    head, side = 16, 90
    sheet = Image.new("L", (side + w * ZOOM * len(columns), head + h * ZOOM * len(KEYS)), 255)
    draw = ImageDraw.Draw(sheet)
    for j, (label, work) in enumerate(columns):
        draw.text((side + j * w * ZOOM + 4, 2), label, fill=0)
        for i, key in enumerate(KEYS):
            img = cell(work, key).resize((w * ZOOM, h * ZOOM), Image.NEAREST)
            sheet.paste(img, (side + j * w * ZOOM, head + i * h * ZOOM))
    for i, key in enumerate(KEYS):
        draw.text((4, head + i * h * ZOOM + h * ZOOM // 2), "violin, " + key, fill=0)
    tmp = out + ".tmp.png"
    sheet.save(tmp)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
