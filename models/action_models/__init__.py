"""Video networks of ReBias' action-recognition experiment (spec §7): a single-pathway 3D ResNet."""
from models.action_models.resnet3d import ResNet3D, feature_map_size

__all__ = ["ResNet3D", "feature_map_size"]
