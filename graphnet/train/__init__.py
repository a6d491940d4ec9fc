"""Training: data, optimizers, schedules and the training loop.

``data`` finds, reads, splits, preprocesses and batches the examples (``load_data``,
``shuffled_batches``); ``optim`` holds the optimizers that update one flat parameter buffer;
``schedule`` gives the learning rate of every step; the loop that ties them together drives a
``graphnet.Model`` through the epochs a spec's ``train:`` section declares.
"""
