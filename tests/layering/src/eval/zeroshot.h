#pragma once
// Fixture header.
