"""Model access: recipes (``recipe``), building and loading models and resolving layer addresses
(``loading``), the layer table (``summary``) and the offline zoo (``zoo``)."""
