#include "visible_iter.h"
