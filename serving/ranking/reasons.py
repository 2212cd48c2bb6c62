"""Short, human reasons for a recommendation, from the feature that lifted it most."""

# Longest matching prefix wins, so families of features share one sentence.
REASONS: tuple[tuple[str, str], ...] = (
    ("goal", "Matches your goal"),
    ("level_fit", "Right for your level"),
    ("equipment_fit", "Fits the equipment you have"),
    ("intensity_fit", "Suits how recovered you are"),
    ("recovery", "Suits how recovered you are"),
    ("category_affinity", "Because you like {category}"),
    ("affinity", "Because you like {category}"),
    ("duration", "Fits your usual session length"),
    ("session", "Fits your usual session length"),
    ("completion", "People finish this one"),
    ("ctr", "Popular with people like you"),
    ("popularity", "Popular this week"),
    ("pop", "Popular this week"),
    # The packaged model's candidate sources (their score and rank are ranker features).
    ("history", "You did this before"),
    ("ease", "People who train like you did this"),
    ("content", "Like what you did before"),
)
DEFAULT_REASON = "Recommended for you"


def reason_for(feature: str | None, *, category: str) -> str:
    if feature:
        name = feature.lower()
        for key, text in REASONS:
            if key in name:
                return text.format(category=category)
    return DEFAULT_REASON
