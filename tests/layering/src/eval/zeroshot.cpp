// Fixture: an include against the modules' order (see ../../README.md).
#include "eval/zeroshot.h"
#include "common/error.h"
#include "train/prompts.h"
