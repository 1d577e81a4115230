#include "txn_writes.h"
