"""The prints and surfaces Pinpoint's pattern model answers (the model was called `theme` before topics took that name).

Chosen because each can be generated convincingly and each is a question a shop actually asks
of a photo ("is this dress striped or floral?"). The model card repeats these definitions.
"""

PATTERNS = {
    "solid": "one colour: plain fabric, paint or plastic, with light, folds and fine weave",
    "stripes": "parallel bands of two to four colours, any width and angle, pinstripes included",
    "checks": "gingham, tartan/plaid and checkerboards: bands crossing at right angles",
    "polka dots": "round dots of one size on a ground, in a grid or scattered",
    "floral": "flower-like blobs (petals round a centre) and leaves, scattered on a ground",
    "geometric": "triangles, chevrons, diamonds, hexagons, circles and other hard-edged shapes",
    "text": "printed letters and words: labels, packaging, newspaper, posters",
    "natural texture": "wood, stone, gravel, brick, grass, sand, marble, fur: nature's irregular surfaces",
}
PATTERN_LABELS = tuple(PATTERNS)
