"""Synthetic NIH ChestX-ray14-format datasets: cohort sampling, phantom rendering, writing."""
from cxrzoo.synth.cohort import Study, sample_cohort, split_patients
from cxrzoo.synth.phantom import render
from cxrzoo.synth.writer import write_dataset

__all__ = ["Study", "sample_cohort", "split_patients", "render", "write_dataset"]
