"""Quality signals over the workspace tables.

May import: aio, errors, explore, generation, models, providers, scaffolding, workspace.
"""
