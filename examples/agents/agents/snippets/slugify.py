import re
import unicodedata


def slugify(text):
    """Lowercase ASCII words of `text` joined by single hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.split(r"[^a-z0-9]+", ascii_text.lower())
    return "-".join(word for word in words if word)
