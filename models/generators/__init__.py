"""Candidate generators: pure model code (numpy, scipy, pandas), importing no other project package."""

from models.generators.base import CANDIDATE_COLUMNS, CandidateGenerator, InteractionIndex, ScoringGenerator
from models.generators.blend import BlendGenerator
from models.generators.content import AttributeEncoder, ContentGenerator, attribute_matrix
from models.generators.factors import ALSGenerator
from models.generators.item_item import EASEGenerator, RP3betaGenerator, item_gram
from models.generators.merge import merge_candidates
from models.generators.persist import load_generator, save_generator
from models.generators.popularity import PopularityGenerator
from models.generators.spectral import SpectralGenerator

__all__ = [
    "CANDIDATE_COLUMNS",
    "ALSGenerator",
    "AttributeEncoder",
    "BlendGenerator",
    "CandidateGenerator",
    "ContentGenerator",
    "EASEGenerator",
    "InteractionIndex",
    "PopularityGenerator",
    "RP3betaGenerator",
    "ScoringGenerator",
    "SpectralGenerator",
    "attribute_matrix",
    "item_gram",
    "load_generator",
    "merge_candidates",
    "save_generator",
]
