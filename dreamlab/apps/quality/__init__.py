"""Quality measures that say whether renders are right (``measures``), and the planted-filter models they use
(``planted``)."""
