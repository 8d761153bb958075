/* Tao-C: the umbrella header. Include this and link libtao. */
#ifndef TAO_H
#define TAO_H

#include "tao/common.h"
#include "tao/codec.h"
#include "tao/message.h"
#include "tao/conn.h"
#include "tao/proxy.h"
#include "tao/restart.h"
#include "tao/server.h"
#include "tao/timer.h"
#include "tao/client.h"
#include "tao/tls.h"

#endif
