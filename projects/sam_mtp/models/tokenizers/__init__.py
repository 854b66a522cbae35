"""Point tokenizers: SAM-guided (one token per SAM region) and the FPS + kNN baseline."""
from .fps_knn_tokenizer import FPSKNNTokenizer
from .point_tokens import PointTokens, group_centroids, sample_group_members
from .sam_guided_tokenizer import SAMGuidedTokenizer

__all__ = ['PointTokens', 'SAMGuidedTokenizer', 'FPSKNNTokenizer', 'sample_group_members', 'group_centroids']
