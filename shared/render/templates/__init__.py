"""Batch-script templates: ``*.sh.j2`` files, and one module per recipe-selectable template
(see :mod:`aifactory.shared.recipes.templates`). Files starting with ``_`` and the
``base``/``apptainer``/``native`` layers are partials that templates extend or include."""
