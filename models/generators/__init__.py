"""Candidate generators: pure model code (numpy, scipy, pandas), importing no other project package."""

from models.generators.base import CANDIDATE_COLUMNS, CandidateGenerator, InteractionIndex, ScoringGenerator
from models.generators.content import AttributeEncoder, ContentGenerator, attribute_matrix
from models.generators.factors import ALSGenerator
from models.generators.item_item import EASEGenerator, RP3betaGenerator
from models.generators.merge import merge_candidates
from models.generators.persist import load_generator, save_generator
from models.generators.popularity import PopularityGenerator

__all__ = [
    "CANDIDATE_COLUMNS",
    "ALSGenerator",
    "AttributeEncoder",
    "CandidateGenerator",
    "ContentGenerator",
    "EASEGenerator",
    "InteractionIndex",
    "PopularityGenerator",
    "RP3betaGenerator",
    "ScoringGenerator",
    "attribute_matrix",
    "load_generator",
    "merge_candidates",
    "save_generator",
]
