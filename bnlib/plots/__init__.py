"""One function per paper figure, with the paper's axes and labels; chapters call these."""
