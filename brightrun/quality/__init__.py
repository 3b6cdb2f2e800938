"""Quality signals over the workspace tables."""
