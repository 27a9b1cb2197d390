"""Everything a run reads before the model does: questions, prompts, and the embedded tasks.

    tasks.py      the registry of embedded tasks (tiny-math, tiny-digits, tiny-sounds): names -> modules
    tinymath.py   tinydigits.py   tinyaudio.py   each task and the builder of its tiny model
    build.py      what the builders share: character tokenizer, pre-training loop, cache
    files.py      --data: the embedded tasks, hub sets and data files -> rows {"question", "answer"}
    prompts.py    rows -> the prompts each model expects (chat template, --prompt-template)
    media.py      images and audio in data files, decoded at load time

train.py and eval.py import the modules they use (data.files, data.prompts, data.tasks). Nothing in
this folder imports the engine, the trainer or the evaluator: data flows one way, into them.
"""
