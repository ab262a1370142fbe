"""Network definitions (torch). Importing this package does not import torch; building does.

from fer_core.models import create_model, list_models
model = create_model("autofernet", num_classes=7)
"""

from fer_core.models.registry import ModelSpec, create_model, get_spec, list_models, register

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register"]
