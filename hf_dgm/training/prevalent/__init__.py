"""Training of the Prevalent family: pretraining triplets and masking (`data`), the pretraining run (`pretrain`), and
R2R fine-tuning of the navigation agent (`finetune`)."""
