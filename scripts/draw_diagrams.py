"""Draw the four course diagrams (what is trained, frozen, shared or sent) as small SVGs into notebooks/figures/.
Hand-laid boxes and arrows, no dependency. Run: python scripts/draw_diagrams.py (then scripts/embed_diagrams.py)."""

from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "notebooks" / "figures"

OUT.mkdir(parents=True, exist_ok=True)
FROZEN, TRAINED, SHARED, SENT, TEXT = "#c9d3e0", "#f4a259", "#8cc084", "#7b6cd9", "#222"
def box(x, y, w, h, fill, label, sub=""):
    s = f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="8" fill="{fill}" stroke="#555"/>'
    s += f'<text x="{x+w/2}" y="{y+h/2+(-2 if sub else 5)}" text-anchor="middle" font-size="14" fill="{TEXT}">{label}</text>'
    if sub:
        s += f'<text x="{x+w/2}" y="{y+h/2+15}" text-anchor="middle" font-size="11" fill="#444">{sub}</text>'
    return s
def arrow(x1, y1, x2, y2, colour="#555", label="", dash=False):
    d = ' stroke-dasharray="5,4"' if dash else ""
    s = f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" stroke-width="2" marker-end="url(#a{colour[1:]})"{d}/>'
    if label:
        s += f'<text x="{(x1+x2)/2+6}" y="{(y1+y2)/2-4}" font-size="11" fill="{colour}">{label}</text>'
    return s
def legend(y, items):
    s, x = "", 20
    for fill, label in items:
        s += f'<rect x="{x}" y="{y}" width="14" height="14" rx="3" fill="{fill}" stroke="#555"/><text x="{x+20}" y="{y+12}" font-size="12" fill="{TEXT}">{label}</text>'
        x += 30 + 7.2 * len(label)
    return s
def svg(w, h, title, body):
    markers = "".join(f'<marker id="a{c[1:]}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>' for c in ("#555", SENT))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif">'
            f'<title>{title}</title><defs>{markers}</defs><rect width="{w}" height="{h}" fill="white"/>{body}</svg>\n')

# 01 transfer: frozen body, new head; fine-tuning variant unfreezes the top block
b = box(20, 60, 120, 50, "#eee", "input", "image or sentence")
b += arrow(140, 85, 170, 85) + box(170, 50, 110, 70, FROZEN, "early layers", "frozen")
b += arrow(280, 85, 310, 85) + box(310, 50, 110, 70, FROZEN, "top block", "frozen (02: trained)")
b += arrow(420, 85, 450, 85) + box(450, 50, 110, 70, TRAINED, "new head", "trained")
b += arrow(560, 85, 590, 85) + box(590, 60, 90, 50, "#eee", "label")
b += '<text x="20" y="30" font-size="15" font-weight="bold">Transfer learning: reuse a pretrained body, train only a new head</text>'
b += legend(150, [(FROZEN, "frozen: pretrained weights, no gradient"), (TRAINED, "trained on your labels")])
(OUT / "01_transfer.svg").write_text(svg(700, 180, "Transfer learning diagram", b))

# 02 fine-tuning: strategies, and LoRA's update
b = '<text x="20" y="30" font-size="15" font-weight="bold">Fine-tuning: which weights learn</text>'
for i, (name, fills) in enumerate([("frozen", [FROZEN] * 3), ("top-k", [FROZEN, FROZEN, TRAINED]), ("full", [TRAINED] * 3)]):
    x = 20 + i * 150
    b += f'<text x="{x+60}" y="58" text-anchor="middle" font-size="13">{name}</text>'
    b += box(x, 70, 120, 30, TRAINED, "head")
    for j, f in enumerate(fills):
        b += box(x, 200 - j * 45, 120, 38, f, f"layer {j+1}" if j < 2 else "top layers")
b += '<text x="560" y="58" text-anchor="middle" font-size="13">LoRA (one layer)</text>'
b += box(470, 80, 80, 60, FROZEN, "W", "frozen")
b += box(570, 80, 40, 60, TRAINED, "A", "r x d") + box(620, 80, 40, 60, TRAINED, "B", "d x r")
b += '<text x="565" y="170" text-anchor="middle" font-size="12">h = W x + (alpha/r) B A x</text>'
b += '<text x="565" y="188" text-anchor="middle" font-size="11" fill="#444">B starts at 0: training starts</text>'
b += '<text x="565" y="202" text-anchor="middle" font-size="11" fill="#444">from the pretrained model</text>'
b += legend(260, [(FROZEN, "frozen"), (TRAINED, "trained")])
(OUT / "02_fine_tuning.svg").write_text(svg(700, 295, "Fine-tuning strategies diagram", b))

# 03 multitask: shared encoder, two heads, joint loss
b = '<text x="20" y="30" font-size="15" font-weight="bold">Multitask learning: one shared encoder, two task heads</text>'
b += box(20, 105, 130, 50, "#eee", "sentence", "word pieces")
b += arrow(150, 130, 190, 130) + box(190, 90, 170, 80, SHARED, "shared encoder", "MiniLM, both tasks' gradients")
b += arrow(360, 115, 420, 75) + box(420, 50, 150, 50, TRAINED, "NER head", "tag per word")
b += arrow(360, 145, 420, 185) + box(420, 160, 150, 50, TRAINED, "relation head", "pair of entity spans")
b += arrow(570, 75, 600, 110) + arrow(570, 185, 600, 150) + box(600, 105, 90, 50, "#eee", "joint loss", "w1 L1 + w2 L2")
b += legend(235, [(SHARED, "shared by both tasks"), (TRAINED, "one per task")])
(OUT / "03_multitask.svg").write_text(svg(710, 265, "Multitask diagram", b))

# 04 federated: clients keep data, send updates; server aggregates
b = '<text x="20" y="30" font-size="15" font-weight="bold">Federated learning: the data stays, only updates travel</text>'
b += box(270, 50, 170, 60, SHARED, "server", "weighted average (FedAvg)")
for i, name in enumerate(["bank / phone 1", "bank / phone 2", "bank / phone 3"]):
    x = 40 + i * 230
    b += box(x, 190, 170, 60, TRAINED, name, "trains on its own data")
    b += box(x + 20, 265, 130, 28, FROZEN, "its data: stays")
    b += arrow(x + 95, 190, 330 + i * 25, 110, SENT, "update" if i == 0 else "")
    b += arrow(300 + i * 25, 110, x + 65, 190, "#555", "global model" if i == 2 else "", dash=True)
b += legend(310, [(SHARED, "global model"), (TRAINED, "local training"), (FROZEN, "raw data")])
b += f'<text x="20" y="345" font-size="12" fill="{SENT}">purple arrows: what is sent; updates can leak data unless aggregated or noised</text>'
(OUT / "04_federated.svg").write_text(svg(740, 360, "Federated learning diagram", b))
