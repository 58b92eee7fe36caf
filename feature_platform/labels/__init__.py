"""Label functions for declared training sets (referenced as `module:function` by TrainingSetSpec)."""
