"""The gallery: every channel of a layer rendered as PNGs with contact sheets and a static page.

``build`` plans, renders and resumes; ``page`` writes ``index.html``."""
