"""Stage 1 and 2 of the recipe: long-CoT SFT and the choice of its checkpoint by entropy."""
