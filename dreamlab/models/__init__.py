"""Model access: recipes (``recipe``), building and loading models and resolving layer addresses
(``loading``), a model made ready for a render (``prepare``), the layer table (``summary``) and the offline zoo
(``zoo``)."""
