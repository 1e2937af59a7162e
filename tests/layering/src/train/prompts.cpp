// Fixture: a higher module may include a lower one.
#include "eval/zeroshot.h"
