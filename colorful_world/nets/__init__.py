"""The networks and their files: generators, discriminator, encoders, checkpoints, exported models, prediction. Imports core and io."""
